"""NAVSIM v2 adapter: the IRL-VLA agent behind NAVSIM's `AbstractAgent`, submissions and navhard evaluation."""
