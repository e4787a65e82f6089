"""ConvNet Playground's training package; it never imports Streamlit.

Importing it imports torch and torchvision in full, once, under this package's
import lock. A Streamlit server runs each visitor's page in a thread of its own;
pages that import `core` first therefore wait for one complete import instead
of racing each other into half-initialised torchvision modules.
"""

import torch  # noqa: F401
import torchvision  # noqa: F401
import torchvision.transforms.v2  # noqa: F401
