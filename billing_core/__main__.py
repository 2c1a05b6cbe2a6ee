from billing_core.cli import main

raise SystemExit(main())
