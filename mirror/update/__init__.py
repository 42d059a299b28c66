"""Stage: the daily changes from the INSEE API Sirene 3.11: client, JSON records <-> stock rows, `mirror update`."""
