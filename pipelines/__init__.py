"""Jobs that compose the library: synthesis, training, forecasts, the demo."""
