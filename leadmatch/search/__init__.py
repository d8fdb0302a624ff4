"""Searching: probes (photos, stills, video), the ranked candidate list, what a lead is, crops and the lead report."""
