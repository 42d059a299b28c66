"""The local HTTP API of `mirror serve` (API Entreprise, recherche-entreprises): layer 7, above export."""
