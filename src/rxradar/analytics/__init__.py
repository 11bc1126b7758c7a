"""Analytics: derived tables computed from the canonical tables (always rebuildable).

``rxradar analyze`` runs the stages in order (persons → patient indicators → prescriber and
pharmacy metrics) and keeps each result in the workspace's ``analytics/`` folder.
"""
