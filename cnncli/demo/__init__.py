"""`cnncli demo`: the course's façade path end to end on the bundled sample data."""
