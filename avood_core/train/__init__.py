"""Shared training machinery for components: loops, seeding, precision (fp32 / bf16 autocast)."""
