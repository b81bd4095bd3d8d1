"""The `elocap` command line and study/cluster job submission."""
