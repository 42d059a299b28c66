"""Stand-ins for the real world, for tests, demos and benchmarks: the synthetic stock generator and the
local data.gouv.fr + INSEE API upstream serving it on 127.0.0.1."""
