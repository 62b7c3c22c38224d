this is not HCL at all {{{ and must be skipped: hidden files are not policy
