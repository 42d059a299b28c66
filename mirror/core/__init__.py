"""Layer 0: what every stage shares: per-table facts (schema), the typing SQL, the data-directory layout,
state and writer lock, SQL files and quoting, errors, fault injection, identifiers and geography."""
