from rbee_daemons.queen.main import main

raise SystemExit(main())
