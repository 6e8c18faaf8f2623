"""dispatch-rl's core: problem model, feasibility, objective, swap pass, baselines, DQN.

Pure and synchronous; knows nothing of Kafka.
"""
