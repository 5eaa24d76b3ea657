"""What comes back (SG-4, OO-1): bounces, complaints and refusals sent by mail, heard by the
inbound listener, read into verdicts, and acted on in one transaction each."""
