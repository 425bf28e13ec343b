"""Judging: artifacts on disk -> parsed records -> verdict -> metrics (evaluate, verdict, metrics). Pure: it
knows the catalog and the parsers, nothing of pytest, backends' machinery or reports."""
