from rbee_daemons.hive.main import main

raise SystemExit(main())
