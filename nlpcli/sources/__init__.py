"""Where models and data come from: the hub, local files and folders, or built-in presets and samples."""
