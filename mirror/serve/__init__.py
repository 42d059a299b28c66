"""Stage: answers from the mirror: API Entreprise documents (lookups, bulk) and the mirror's status."""
