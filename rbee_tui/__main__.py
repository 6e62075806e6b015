from rbee_tui.main import main

raise SystemExit(main())
