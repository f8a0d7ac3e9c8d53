"""The board: a live web page of what is deployed, what is ready, and why a commit waits (`autodeploy board`)."""
