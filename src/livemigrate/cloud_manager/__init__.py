"""The Cloud Manager role: the liveExport migration link and the inventory it pushes."""
