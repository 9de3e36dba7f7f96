"""Federated simulation (the paper's §2.3): shape and material learnt across sites, every
site keeping its images, latents, enhancer and discriminator.

``protocol`` (rounds, the update a site sends, its validation), ``client`` (one site:
shared vs local parameters), ``server`` (FedSGD with Adam, round checkpoints),
``inprocess`` (all sites in one process) and ``flower_app`` (the same client and server
under Flower; the only module that imports ``flwr``).
"""
