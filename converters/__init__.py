"""Input converters: sniff the bytes, parse one kind of input into a neutral ``CapturedImage``,
and build typed DICOM objects from it (``converters.iods``). Adding an input format never
touches DICOM code, and adding an IOD never touches parsing."""
