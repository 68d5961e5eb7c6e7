"""The floor: what talks to MongoDB for every phase — connecting, reading in batches and ranges,
writing in order, collection specs, the cutover's write block, the claim a migration keeps on its
destination, and the checkpoints a shared migration keeps there. Nothing here knows of a phase."""
