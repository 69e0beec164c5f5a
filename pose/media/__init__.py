"""The PyAV side of pose: reading videos (`video`), transcoding for the web (`transcode`), and the limits checked
on untrusted media before it is decoded (`safety`)."""
