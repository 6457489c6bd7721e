"""exvo-keras: Keras 3 reproduction of Purohit et al., ExVo Multi-Task 2022."""

__version__ = "0.1.0"
