"""Routes for sibling services, authenticated with the shared service token."""
