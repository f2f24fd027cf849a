"""`nowcast predict`: new radar files → the checkpoint's preprocessing → model → CF-netCDF nowcast."""
