"""Label names and fixed facts of the ExVo Multi-Task corpus (HUME-VB)."""

SAMPLE_RATE = 16000
# The longest clip the SSL encoders take by default: attention memory grows with the square of the length.
MAX_SSL_SECONDS = 60.0

# The order used by the challenge's data_info.csv and its submission files.
EMOTIONS = (
    "Awe",
    "Excitement",
    "Amusement",
    "Awkwardness",
    "Fear",
    "Horror",
    "Distress",
    "Triumph",
    "Sadness",
    "Surprise",
)

# Country integer code -> Country_string, as distributed.
COUNTRIES = ("China", "South Africa", "USA", "Venezuela")

SPLITS = ("Train", "Val", "Test")
