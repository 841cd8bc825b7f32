"""click commands, one module each; they stay thin and call library functions."""
