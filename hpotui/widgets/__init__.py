"""The dashboard's panels, one widget per module; each draws from `hpotui.state`."""
