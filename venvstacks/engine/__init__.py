"""The doit task graph: task dicts per layer, the steps they run, and running doit in-process."""
