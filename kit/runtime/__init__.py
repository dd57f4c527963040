"""The process a run lives in: seeds, the thread budget, the device, torchrun ranks.

seed.py (seed_everything, worker seeds, the determinism switch), threads.py (how many threads
each library may use), devices.py (device choice, autocast, pinned copies), distributed.py
(torchrun / DDP: ranks, rank-0 writes, gathered predictions).
Imports: kit.errors, kit.io only; nothing here knows a config or a competition.
"""
