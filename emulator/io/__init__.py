"""Writers of forecasts and spectra to NetCDF."""
