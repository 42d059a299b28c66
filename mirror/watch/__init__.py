"""Watchlists: the changes of chosen units and établissements, collected after every sync (lists.py)."""
