from hinas.cli import main

raise SystemExit(main())
