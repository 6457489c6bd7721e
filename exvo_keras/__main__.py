import sys

from exvo_keras.cli import main

sys.exit(main())
