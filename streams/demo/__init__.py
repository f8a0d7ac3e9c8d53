"""`autodeploy demo`: a signed scenario played through the webhook endpoints of a running pipeline."""
