from hbase_sync.cli import main

raise SystemExit(main())
