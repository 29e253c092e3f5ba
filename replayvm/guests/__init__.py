"""Bundled guest kernels: the C/assembly SDK, guest sources, build script, images.

Every guest is a PVH ELF kernel that boots unchanged on ReplayVM's rv-pc
machine and on ``qemu-system-x86_64 -M pc -kernel``; ``catalog`` lists them
with their expected output, ``build`` rebuilds ``images/`` from ``sdk/`` and
``src/`` with the system gcc.
"""
