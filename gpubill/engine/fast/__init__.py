"""The fast engine: kernel tables built from the specs (``tables``, ``program_tables``, laid out
once in ``layout``), the numba kernels (``kernels``, ``shaped``, ``accumulate``, ``sequence``)
run by ``main_pass``, decoding and assembly (``rate``), and the exact path for what int64
cannot hold (``exact``); ``columns`` holds event columns in memory.
"""
