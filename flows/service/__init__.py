"""The real-time tagging service (``voc serve``): the FastAPI app and the reviewers' upload page."""
