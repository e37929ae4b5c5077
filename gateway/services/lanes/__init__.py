"""Car-park lanes: a plate camera's read in, a gate action and the lane's display out."""
