"""`rbee-hive`: one per machine; model catalog, devices, workers and heartbeats."""
