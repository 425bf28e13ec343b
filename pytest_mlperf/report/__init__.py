"""Reports, all written from the typed CaseRecord: JUnit properties, the pytest-html report, the results JSON
file, saved baselines and the terminal summary."""
