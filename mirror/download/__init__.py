"""Stage: discover and download the monthly stock files from data.gouv.fr (resumable, verified)."""
