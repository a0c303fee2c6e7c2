"""rtpengine: the ng protocol, the media commands of a transfer, the files it plays."""
