from rbee_daemons.worker.main import main

raise SystemExit(main())
