"""The one evaluation engine every application goes through: build a pool, task pool and
method from a composed config (after building what the config ``requires``), merge, evaluate,
and store reference scores and results."""
