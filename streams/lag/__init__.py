"""Consumer lag: polling offsets, exporting them to Prometheus, and showing them in a terminal."""
