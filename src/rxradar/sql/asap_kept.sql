-- Records of the loaded files that break no rejecting rule and are not zero reports.
CREATE OR REPLACE TEMP VIEW asap_kept AS SELECT * FROM asap_rows WHERE kept;
