"""Model component layers shared by methods (``bench.models.wan``: the Wan2.2-Animate components)."""
