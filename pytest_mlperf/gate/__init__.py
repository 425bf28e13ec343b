"""What gates a run: saved baselines and their regression rules (baseline, policy), NVIDIA's published
figures (policy), the fingerprint that says what changed (fingerprint), several nodes against their median
(fleet), and MLPerf's compliance checker (compliance)."""
