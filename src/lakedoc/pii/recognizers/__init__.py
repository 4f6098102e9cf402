"""lakedoc's own Presidio recognizers, one module per class as in ``presidio_analyzer.predefined_recognizers``.
Importing this package imports Presidio (only the engine does, on the workers)."""
from lakedoc.pii.recognizers.name_gazetteer_recognizer import NameGazetteerRecognizer
from lakedoc.pii.recognizers.windowed_phone_recognizer import WindowedPhoneRecognizer, phone_windows

__all__ = ["NameGazetteerRecognizer", "WindowedPhoneRecognizer", "phone_windows"]
