"""Speed and memory benchmarks of hf_simple_s2s (run as `python -m benchmarks.<script>` from the repo root)."""
