"""Interactive refinement: AC re-prediction with clicks, DISCA continual adaptation."""
